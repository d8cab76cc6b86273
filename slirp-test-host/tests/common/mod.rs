//! Helpers shared by the NAT simulation tests: a booted guest on the fake internet, UDP
//! round trips, and ICMP errors as the guest sees them.
#![allow(dead_code)]

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use slirp_test_host::smoltcp::iface::SocketHandle;
use slirp_test_host::smoltcp::phy::ChecksumCapabilities;
use slirp_test_host::smoltcp::socket::icmp;
use slirp_test_host::smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress,
    IpListenEndpoint, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use slirp_test_host::{FakeNet, LinkFaults, SimConfig, Simulation, GUEST_MAC};

/// The gateway alias.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The DNS alias.
pub const DNS_ALIAS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// The guest's address after DHCP.
pub const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

/// A simulation on `net` whose guest holds a DHCP lease.
pub fn boot(config: SimConfig, net: FakeNet) -> Simulation<FakeNet> {
    let mut sim = Simulation::with_host(config, net).expect("valid configuration");
    sim.wait_for_lease(Duration::from_secs(10)).expect("lease");
    sim
}

/// [`boot`] with a seed, the default configuration and [`FakeNet::internet`].
pub fn boot_internet(seed: u64) -> Simulation<FakeNet> {
    boot(SimConfig::seeded(seed), FakeNet::internet())
}

/// Runs until UDP socket `handle` receives a datagram, or `limit` passes.
pub fn recv_udp(
    sim: &mut Simulation<FakeNet>,
    handle: SocketHandle,
    limit: Duration,
) -> Option<(SocketAddrV4, Vec<u8>)> {
    let mut got = None;
    let _ = sim.run_until(
        |sim| {
            got = sim.guest_mut().udp_recv(handle);
            got.is_some()
        },
        limit,
    );
    got
}

/// Sends `data` from UDP socket `handle` to `dst` and waits (up to 5 s) for the next datagram.
pub fn udp_round_trip(
    sim: &mut Simulation<FakeNet>,
    handle: SocketHandle,
    dst: SocketAddrV4,
    data: &[u8],
) -> Option<(SocketAddrV4, Vec<u8>)> {
    sim.guest_mut().udp_send(handle, dst, data).expect("guest socket has room");
    recv_udp(sim, handle, Duration::from_secs(5))
}

/// An ICMP socket that collects the errors about datagrams sent from guest UDP port `port`.
pub fn icmp_errors_for_udp_port(sim: &mut Simulation<FakeNet>, port: u16) -> SocketHandle {
    let buffer = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 4096]);
    let mut socket = icmp::Socket::new(buffer(), buffer());
    socket.bind(icmp::Endpoint::Udp(IpListenEndpoint { addr: None, port })).expect("bind");
    sim.guest_mut().add_socket(socket)
}

/// An ICMP error as the guest received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// Who sent it.
    pub from: Ipv4Addr,
    /// ICMP type (3: destination unreachable).
    pub msg_type: u8,
    /// ICMP code.
    pub code: u8,
    /// The quoted IP header's destination.
    pub quoted_dst: Ipv4Addr,
    /// The quoted UDP header's ports (source, destination).
    pub quoted_ports: (u16, u16),
}

/// Runs until ICMP socket `handle` receives an error, or `limit` passes.
pub fn recv_icmp_error(sim: &mut Simulation<FakeNet>, handle: SocketHandle, limit: Duration) -> Option<IcmpError> {
    let mut got = None;
    let _ = sim.run_until(
        |sim| {
            let socket = sim.guest_mut().socket_mut::<icmp::Socket>(handle);
            if let Ok((bytes, IpAddress::Ipv4(from))) = socket.recv() {
                let packet = Icmpv4Packet::new_checked(bytes).expect("ICMP packet");
                let repr = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default()).expect("valid ICMP");
                let (header, data) = match repr {
                    Icmpv4Repr::DstUnreachable { header, data, .. } | Icmpv4Repr::TimeExceeded { header, data, .. } => {
                        (header, data)
                    }
                    other => panic!("not an ICMP error: {other:?}"),
                };
                got = Some(IcmpError {
                    from,
                    msg_type: packet.msg_type().into(),
                    code: packet.msg_code(),
                    quoted_dst: header.dst_addr,
                    quoted_ports: (u16::from_be_bytes([data[0], data[1]]), u16::from_be_bytes([data[2], data[3]])),
                });
            }
            got.is_some()
        },
        limit,
    );
    got
}

/// The drop counters of the core with a non-zero count, for failure messages.
pub fn drops(sim: &Simulation<FakeNet>) -> Vec<(slirp_test_host::slirp_core::DropReason, u64)> {
    sim.core().stats().drops().collect()
}

/// A UDP datagram from the guest's MAC to the gateway's MAC, built by hand (for destinations
/// smoltcp would not route to the gateway).
pub fn udp_frame(sim: &Simulation<FakeNet>, src: SocketAddrV4, dst: SocketAddrV4, data: &[u8]) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let udp = UdpRepr { src_port: src.port(), dst_port: dst.port() };
    let ip = Ipv4Repr {
        src_addr: *src.ip(),
        dst_addr: *dst.ip(),
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + data.len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: GUEST_MAC,
        dst_addr: EthernetAddress(sim.core().gateway_mac().0),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut frame = vec![0; 14 + 20 + 8 + data.len()];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    let mut packet = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.emit(&mut packet, &caps);
    udp.emit(
        &mut UdpPacket::new_unchecked(packet.payload_mut()),
        &IpAddress::Ipv4(*src.ip()),
        &IpAddress::Ipv4(*dst.ip()),
        data.len(),
        |buf| buf.copy_from_slice(data),
        &caps,
    );
    frame
}

// ---------------------------------------------------------------------------------------- TCP

use slirp_test_host::sha256::{pattern, Sha256};
use slirp_test_host::smoltcp::socket::tcp;

/// One guest TCP connection driven by a test: uploads `up_len` bytes of pattern stream
/// `up_seed` (then closes its side if `close_after_upload`), and hashes everything it receives.
#[derive(Debug)]
pub struct GuestStream {
    /// The guest socket.
    pub handle: SocketHandle,
    /// Pattern stream uploaded.
    pub up_seed: u64,
    /// Bytes to upload.
    pub up_len: u64,
    /// Bytes uploaded (queued in the socket) so far.
    pub up_sent: u64,
    /// Send FIN once everything is queued.
    pub close_after_upload: bool,
    /// FIN queued.
    pub closed: bool,
    /// Hash of the bytes received.
    pub down: Sha256,
    /// The bytes received, if kept.
    pub kept: Option<Vec<u8>>,
}

impl GuestStream {
    /// A stream on `handle` that uploads nothing and keeps what it receives.
    pub fn new(handle: SocketHandle) -> GuestStream {
        GuestStream {
            handle,
            up_seed: 0,
            up_len: 0,
            up_sent: 0,
            close_after_upload: false,
            closed: false,
            down: Sha256::new(),
            kept: Some(Vec::new()),
        }
    }

    /// Uploads `len` bytes of pattern `seed`, then closes if `close`.
    pub fn uploading(mut self, seed: u64, len: u64, close: bool) -> GuestStream {
        self.up_seed = seed;
        self.up_len = len;
        self.close_after_upload = close;
        self
    }

    /// Hashes what it receives without keeping it.
    pub fn hashing_only(mut self) -> GuestStream {
        self.kept = None;
        self
    }

    /// Bytes received.
    pub fn received(&self) -> u64 {
        self.down.len()
    }

    /// Moves bytes between the test and the guest socket (call between steps).
    pub fn pump(&mut self, sim: &mut Simulation<FakeNet>) {
        let s = sim.guest_mut().socket_mut::<tcp::Socket>(self.handle);
        while self.up_sent < self.up_len && s.can_send() {
            let (seed, at, left) = (self.up_seed, self.up_sent, self.up_len - self.up_sent);
            let n = s
                .send(|buf| {
                    let n = (left.min(buf.len() as u64)) as usize;
                    pattern(seed, at, &mut buf[..n]);
                    (n, n)
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            self.up_sent += n as u64;
        }
        if self.up_sent == self.up_len && self.close_after_upload && !self.closed && s.may_send() {
            s.close();
            self.closed = true;
        }
        while s.can_recv() {
            let down = &mut self.down;
            let kept = &mut self.kept;
            let _ = s.recv(|buf| {
                down.update(buf);
                if let Some(k) = kept.as_mut() {
                    k.extend_from_slice(buf);
                }
                (buf.len(), ())
            });
        }
    }

    /// The guest socket's state.
    pub fn state(&self, sim: &mut Simulation<FakeNet>) -> tcp::State {
        sim.guest_mut().socket_mut::<tcp::Socket>(self.handle).state()
    }

    /// Whether the remote finished sending and everything it sent was read.
    pub fn remote_done(&self, sim: &mut Simulation<FakeNet>) -> bool {
        let s = sim.guest_mut().socket_mut::<tcp::Socket>(self.handle);
        !s.may_recv() && !s.can_recv() && s.state() != tcp::State::SynSent && s.state() != tcp::State::Listen
    }
}

/// Runs until `done` holds for the streams (pumping them every instant), or `limit` passes.
pub fn drive(
    sim: &mut Simulation<FakeNet>,
    streams: &mut [GuestStream],
    limit: Duration,
    mut done: impl FnMut(&mut Simulation<FakeNet>, &[GuestStream]) -> bool,
) -> Result<Duration, slirp_test_host::SimError> {
    sim.run_until(
        |sim| {
            for s in streams.iter_mut() {
                s.pump(sim);
            }
            done(sim, streams)
        },
        limit,
    )
}

/// Runs until the guest socket reaches `state` or `limit` passes; the time it took.
pub fn wait_state(
    sim: &mut Simulation<FakeNet>,
    handle: SocketHandle,
    state: tcp::State,
    limit: Duration,
) -> Result<Duration, slirp_test_host::SimError> {
    sim.run_until(|sim| sim.guest_mut().socket_mut::<tcp::Socket>(handle).state() == state, limit)
}

/// The guest's TCP socket.
pub fn tcp_socket(sim: &mut Simulation<FakeNet>, handle: SocketHandle) -> &mut tcp::Socket<'static> {
    sim.guest_mut().socket_mut::<tcp::Socket>(handle)
}

/// Runs until the core holds no TCP connection and the fake network no open TCP socket (TIME_WAIT
/// included), or `limit` passes.
pub fn wait_tcp_idle(sim: &mut Simulation<FakeNet>, limit: Duration) -> Result<Duration, slirp_test_host::SimError> {
    sim.run_until(|sim| sim.core().tcp_connection_count() == 0 && sim.host().open_tcp_sockets() == 0, limit)
}

/// Frames delivered so far, as recorded by [`record_frames`]: (time, direction, bytes).
pub type FrameLog =
    std::rc::Rc<std::cell::RefCell<Vec<(slirp_test_host::slirp_core::Instant, slirp_test_host::Direction, Vec<u8>)>>>;

/// Records every delivered frame (replacing any tracer).
pub fn record_frames(sim: &mut Simulation<FakeNet>) -> FrameLog {
    let log: FrameLog = Default::default();
    let l = log.clone();
    sim.set_tracer(move |ev| {
        if ev.kind == slirp_test_host::TraceKind::Delivered {
            l.borrow_mut().push((ev.at, ev.direction, ev.frame.to_vec()));
        }
    });
    log
}

/// An ICMP error toward the guest about a TCP segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpIcmpError {
    /// Delivery time.
    pub at: slirp_test_host::slirp_core::Instant,
    /// Sender.
    pub from: Ipv4Addr,
    /// ICMP type.
    pub msg_type: u8,
    /// ICMP code.
    pub code: u8,
    /// The quoted segment's destination.
    pub quoted_dst: Ipv4Addr,
    /// The quoted segment's ports (source, destination).
    pub quoted_ports: (u16, u16),
}

/// The ICMP errors toward the guest about TCP segments.
pub fn icmp_errors_about_tcp(log: &FrameLog) -> Vec<TcpIcmpError> {
    let mut out = Vec::new();
    for (at, dir, frame) in log.borrow().iter() {
        if *dir != slirp_test_host::Direction::ToGuest {
            continue;
        }
        let Ok(eth) = EthernetFrame::new_checked(&frame[..]) else { continue };
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { continue };
        if ip.next_header() != IpProtocol::Icmp {
            continue;
        }
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else { continue };
        let t: u8 = icmp.msg_type().into();
        if t != 3 && t != 11 {
            continue;
        }
        let Ok(inner) = Ipv4Packet::new_checked(icmp.data()) else { continue };
        if inner.next_header() != IpProtocol::Tcp {
            continue;
        }
        let l4 = inner.payload();
        let ports = (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]]));
        out.push(TcpIcmpError {
            at: *at,
            from: ip.src_addr(),
            msg_type: t,
            code: icmp.msg_code(),
            quoted_dst: inner.dst_addr(),
            quoted_ports: ports,
        });
    }
    out
}

/// TCP segments toward the guest with RST set, from `from`: their delivery times.
pub fn resets_to_guest(log: &FrameLog, from: SocketAddrV4) -> Vec<slirp_test_host::slirp_core::Instant> {
    tcp_segments(log, slirp_test_host::Direction::ToGuest)
        .into_iter()
        .filter(|s| s.src == from && s.rst)
        .map(|s| s.at)
        .collect()
}

/// A TCP segment seen on the link.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Delivery time.
    pub at: slirp_test_host::slirp_core::Instant,
    /// Source.
    pub src: SocketAddrV4,
    /// Destination.
    pub dst: SocketAddrV4,
    /// SYN set.
    pub syn: bool,
    /// ACK set.
    pub ack: bool,
    /// RST set.
    pub rst: bool,
    /// FIN set.
    pub fin: bool,
    /// Payload length.
    pub len: usize,
}

/// The TCP segments delivered in `direction`.
pub fn tcp_segments(log: &FrameLog, direction: slirp_test_host::Direction) -> Vec<Segment> {
    let mut out = Vec::new();
    for (at, dir, frame) in log.borrow().iter() {
        if *dir != direction {
            continue;
        }
        let Ok(eth) = EthernetFrame::new_checked(&frame[..]) else { continue };
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { continue };
        if ip.next_header() != IpProtocol::Tcp {
            continue;
        }
        let Ok(tcp) = slirp_test_host::smoltcp::wire::TcpPacket::new_checked(ip.payload()) else { continue };
        out.push(Segment {
            at: *at,
            src: SocketAddrV4::new(ip.src_addr(), tcp.src_port()),
            dst: SocketAddrV4::new(ip.dst_addr(), tcp.dst_port()),
            syn: tcp.syn(),
            ack: tcp.ack(),
            rst: tcp.rst(),
            fin: tcp.fin(),
            len: tcp.payload().len(),
        });
    }
    out
}

/// After a bulk transfer from the fake internet's pattern source (seeded `seed ^ 0xd0`) into
/// `streams[0]` and, when there is one, from `streams[1]` into its sink (pattern `seed ^ 0xa0`):
/// both arrived whole; then the download's guest side closes (the source closed first), the
/// link's faults are cleared, every flow and host socket must be gone once TIME_WAIT passes, and
/// the host must have seen no misuse of its sockets.
pub fn check_transfers_and_settle(sim: &mut Simulation<FakeNet>, streams: &mut [GuestStream], seed: u64, len: u64) {
    use slirp_test_host::sha256::pattern_digest;
    use slirp_test_host::{Direction, LinkFaults};
    assert_eq!(streams[0].received(), len, "seed {seed}: download length");
    assert!(streams[0].down.finish() == pattern_digest(seed ^ 0xd0, len), "seed {seed}: download hash");
    if let Some(up) = streams.get(1) {
        // The sink answers with its count and hash of what it received.
        let reply = up.kept.as_ref().unwrap();
        assert_eq!(reply.len(), 40, "seed {seed}: sink reply");
        assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), len, "seed {seed}: upload length");
        assert!(reply[8..] == pattern_digest(seed ^ 0xa0, len), "seed {seed}: upload hash");
    }
    tcp_socket(sim, streams[0].handle).close();
    sim.link_mut().set_faults(Direction::ToCore, LinkFaults::NONE);
    sim.link_mut().set_faults(Direction::ToGuest, LinkFaults::NONE);
    wait_tcp_idle(sim, Duration::from_secs(30)).unwrap_or_else(|e| {
        panic!("seed {seed}: not idle: {e}; core {:?}", sim.core().tcp_connections().collect::<Vec<_>>())
    });
    let stats = sim.host().stats();
    assert_eq!(stats.unknown_socket_calls, 0, "seed {seed}");
    assert_eq!(stats.tcp_empty_reads, 0, "seed {seed}");
    assert_eq!(stats.tcp_send_after_shutdown, 0, "seed {seed}");
}

/// Loss, reordering, duplication and delay for the bulk-transfer tests (the link's corruption
/// stays off: the TCP checksum would catch it, but smoltcp and the core count it as a drop, not
/// a test failure).
pub fn faults(loss: f64) -> LinkFaults {
    LinkFaults {
        loss,
        duplicate: 0.01,
        reorder: 0.02,
        delay: Duration::from_micros(200),
        jitter: Duration::from_micros(300),
        ..LinkFaults::NONE
    }
}
