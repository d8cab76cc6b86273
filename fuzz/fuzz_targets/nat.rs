//! The NAT paths with a host whose answers come from the fuzzer: guest frames (UDP, ICMP echo,
//! TCP, DHCP shaped), host readiness with arbitrary datagrams, errors and echo replies, socket
//! failures, forwards added and removed, time jumps and guest-link drains. Outputs must stay
//! well formed (see `frames`), and the engine must never ask the host about a socket it closed.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slirp_core::wire::{EtherType, EthernetFrame, Ipv4Packet};
use slirp_core::{
    Config, EchoKind, EchoReply, HostError, HostSocket, Instant, IpVersion, Slirp, SocketId, Storage, UdpEvent,
};
use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

#[derive(Arbitrary, Debug, Clone)]
enum HostAnswer {
    Datagram { from: [u8; 4], port: u16, data: Vec<u8> },
    Error { offender: [u8; 4], dst: [u8; 4], port: u16, code: u8 },
    Echo { from: [u8; 4], ident: u16, seq: u16, data: Vec<u8> },
    Fail(u8),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Udp { src_last: u8, dst: [u8; 4], sport: u16, dport: u16, ttl: u8, data: Vec<u8> },
    Ping { src_last: u8, dst: [u8; 4], ident: u16, seq: u16, data: Vec<u8> },
    Raw(Vec<u8>),
    Tcp { src_last: u8, dst: [u8; 4], sport: u16, dport: u16, flags: u8, seq: u32, ack: u32, win: u16, data: Vec<u8> },
    Writable { which: u8, connect: u8 },
    TcpData { which: u8, data: Vec<u8>, eof: bool },
    AddTcpForward { port: u16, gport: u16 },
    Accept { port: u16 },
    Readable { which: u8, answers: Vec<HostAnswer> },
    AddForward { port: u16, guest_last: u8, gport: u16 },
    RemoveForward(u32),
    Advance(u16),
    Drain(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// The link's checksum and segmentation offloads are on.
    offload: bool,
    restricted: bool,
    no_loopback: bool,
    echo_ok: bool,
    bind_fails: bool,
    steps: Vec<Step>,
}

fn err(code: u8) -> HostError {
    match code % 8 {
        0 => HostError::WouldBlock,
        1 => HostError::NetUnreachable,
        2 => HostError::HostUnreachable,
        3 => HostError::Refused,
        4 => HostError::PermissionDenied,
        5 => HostError::TooLarge,
        6 => HostError::Exhausted,
        _ => HostError::Other,
    }
}

#[derive(Default)]
struct FuzzHost {
    tcp_inbox: std::collections::HashMap<u64, (Vec<u8>, bool)>,
    connect_result: Option<HostError>,
    accepts: VecDeque<SocketAddrV4>,
    listeners: Vec<SocketId>,
    open: HashSet<u64>,
    known: Vec<SocketId>,
    queue: VecDeque<HostAnswer>,
    echo_ok: bool,
    bind_fails: bool,
}

impl HostSocket for FuzzHost {
    fn udp_bind(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        if self.bind_fails && local.port() == 0 {
            return Err(HostError::Exhausted);
        }
        assert!(self.open.insert(id.0), "socket id reused while open");
        self.known.push(id);
        Ok(SocketAddr::new(local.ip(), local.port().max(40000)))
    }
    fn udp_send_to(&mut self, id: SocketId, _: &[u8], _: SocketAddr, _: Option<u8>) -> Result<(), HostError> {
        assert!(self.open.contains(&id.0), "send on a closed socket");
        Ok(())
    }
    fn udp_recv_from(&mut self, id: SocketId, buf: &mut [u8]) -> Result<UdpEvent, HostError> {
        assert!(self.open.contains(&id.0), "recv on a closed socket");
        match self.queue.pop_front() {
            Some(HostAnswer::Datagram { from, port, data }) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok(UdpEvent::Datagram { len: n, from: SocketAddrV4::new(from.into(), port).into() })
            }
            Some(HostAnswer::Error { offender, dst, port, code }) => Ok(UdpEvent::Error {
                offender: Ipv4Addr::from(offender).into(),
                dst: SocketAddrV4::new(dst.into(), port).into(),
                error: err(code),
            }),
            Some(HostAnswer::Fail(c)) => Err(err(c)),
            Some(HostAnswer::Echo { .. }) | None => Err(HostError::WouldBlock),
        }
    }
    fn close(&mut self, id: SocketId) {
        self.open.remove(&id.0);
    }
    fn icmp_echo_open(&mut self, id: SocketId, _: IpVersion) -> Result<EchoKind, HostError> {
        if !self.echo_ok {
            return Err(HostError::Unsupported);
        }
        self.open.insert(id.0);
        self.known.push(id);
        Ok(EchoKind::Datagram)
    }
    fn icmp_echo_send(
        &mut self,
        id: SocketId,
        _: IpAddr,
        _: u16,
        _: u16,
        _: &[u8],
        _: Option<u8>,
    ) -> Result<(), HostError> {
        assert!(self.open.contains(&id.0));
        Ok(())
    }
    fn icmp_echo_recv(&mut self, _: SocketId, buf: &mut [u8]) -> Result<EchoReply, HostError> {
        match self.queue.pop_front() {
            Some(HostAnswer::Echo { from, ident, seq, data }) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                Ok(EchoReply { from: Ipv4Addr::from(from).into(), ident, seq_no: seq, len: n })
            }
            Some(HostAnswer::Fail(c)) => Err(err(c)),
            _ => Err(HostError::WouldBlock),
        }
    }
    fn dns_upstream(&self) -> Option<SocketAddr> {
        Some(SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 53), 53).into())
    }
    fn tcp_connect(&mut self, id: SocketId, _: SocketAddr) -> Result<(), HostError> {
        if self.bind_fails {
            return Err(HostError::Refused);
        }
        assert!(self.open.insert(id.0), "tcp socket id reused while open");
        self.known.push(id);
        Ok(())
    }
    fn tcp_connect_result(&mut self, id: SocketId) -> Result<(), HostError> {
        assert!(self.open.contains(&id.0));
        match self.connect_result {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
    fn tcp_send(&mut self, id: SocketId, data: &[u8]) -> Result<usize, HostError> {
        assert!(self.open.contains(&id.0), "tcp send on a closed socket");
        Ok(data.len().min(3000))
    }
    fn tcp_recv(&mut self, id: SocketId, buf: &mut [u8]) -> Result<usize, HostError> {
        assert!(self.open.contains(&id.0), "tcp recv on a closed socket");
        let Some((data, eof)) = self.tcp_inbox.get_mut(&id.0) else { return Err(HostError::WouldBlock) };
        if data.is_empty() {
            return if *eof { Ok(0) } else { Err(HostError::WouldBlock) };
        }
        let n = buf.len().min(data.len());
        buf[..n].copy_from_slice(&data[..n]);
        data.drain(..n);
        Ok(n)
    }
    fn tcp_shutdown_write(&mut self, id: SocketId) -> Result<(), HostError> {
        assert!(self.open.contains(&id.0));
        Ok(())
    }
    fn tcp_abort(&mut self, id: SocketId) {
        self.open.remove(&id.0);
    }
    fn tcp_listen(&mut self, id: SocketId, local: SocketAddr) -> Result<SocketAddr, HostError> {
        self.open.insert(id.0);
        self.listeners.push(id);
        Ok(local)
    }
    fn tcp_accept(&mut self, _: SocketId, id: SocketId) -> Result<SocketAddr, HostError> {
        let peer = self.accepts.pop_front().ok_or(HostError::WouldBlock)?;
        assert!(self.open.insert(id.0), "accepted socket id reused while open");
        self.known.push(id);
        Ok(peer.into())
    }
}

fn frame(proto: u8, src_last: u8, dst: [u8; 4], ttl: u8, l4: &[u8]) -> Vec<u8> {
    let n = l4.len().min(9000);
    let mut f = vec![0u8; 34 + n];
    f[0..6].copy_from_slice(&[0x52, 0x55, 10, 0, 2, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + n) as u16).to_be_bytes());
    ip[8] = ttl;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[10, 0, 2, src_last]);
    ip[16..20].copy_from_slice(&dst);
    let c = slirp_core::wire::checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f[34..].copy_from_slice(&l4[..n]);
    f
}

fn check_output(frame: &[u8], mtu: usize) {
    assert!(frame.len() >= 60 && frame.len() <= mtu + 14);
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    if eth.ethertype() == EtherType::Ipv4 {
        let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
        assert!(ip.verify_checksum());
    }
}

fuzz_target!(|input: Input| {
    let config = Config { restricted: input.restricted, disable_host_loopback: input.no_loopback, ..Config::default() };
    let storage = Storage::with_buffers(64 * 1024, 16 * 1024, 2, 65535).with_udp_capacity(8, 9000).with_tcp_capacity(
        4,
        16 * 1024,
        16 * 1024,
    );
    let mut slirp = Slirp::new(config, storage).expect("config");
    if input.offload {
        slirp.set_guest_offload(slirp_core::GuestOffload { checksum: true, segmentation: true });
    }
    let rx = if input.offload { slirp_core::RxChecksum::Trusted } else { slirp_core::RxChecksum::Unverified };
    // Super-frames may exceed the MTU when the link segments them.
    let max_frame = if input.offload { 65535 } else { 1500 };
    let mut host = FuzzHost { echo_ok: input.echo_ok, bind_fails: input.bind_fails, ..FuzzHost::default() };
    let mut now = Instant::from_millis(0);
    let mut out = vec![0u8; 65536];
    for step in input.steps {
        match step {
            Step::Udp { src_last, dst, sport, dport, ttl, data } => {
                let mut l4 = vec![0u8; 8 + data.len().min(8000)];
                l4[0..2].copy_from_slice(&sport.to_be_bytes());
                l4[2..4].copy_from_slice(&dport.to_be_bytes());
                let ulen = l4.len() as u16;
                l4[4..6].copy_from_slice(&ulen.to_be_bytes());
                let n = l4.len() - 8;
                l4[8..].copy_from_slice(&data[..n]);
                slirp.handle_guest_frame_offloaded(now, &frame(17, src_last, dst, ttl, &l4), rx, &mut host);
            }
            Step::Ping { src_last, dst, ident, seq, data } => {
                let mut l4 = vec![8u8, 0, 0, 0];
                l4.extend_from_slice(&ident.to_be_bytes());
                l4.extend_from_slice(&seq.to_be_bytes());
                l4.extend_from_slice(&data[..data.len().min(8000)]);
                let c = slirp_core::wire::checksum::data(&l4);
                l4[2..4].copy_from_slice(&c.to_be_bytes());
                slirp.handle_guest_frame_offloaded(now, &frame(1, src_last, dst, 64, &l4), rx, &mut host);
            }
            Step::Raw(f) => slirp.handle_guest_frame_offloaded(now, &f, rx, &mut host),
            Step::Tcp { src_last, dst, sport, dport, flags, seq, ack, win, data } => {
                let n = data.len().min(4000);
                let mut l4 = vec![0u8; 20 + n];
                l4[0..2].copy_from_slice(&sport.to_be_bytes());
                l4[2..4].copy_from_slice(&dport.to_be_bytes());
                l4[4..8].copy_from_slice(&seq.to_be_bytes());
                l4[8..12].copy_from_slice(&ack.to_be_bytes());
                l4[12] = 5 << 4;
                l4[13] = flags;
                l4[14..16].copy_from_slice(&win.to_be_bytes());
                l4[20..].copy_from_slice(&data[..n]);
                let src = Ipv4Addr::new(10, 0, 2, src_last);
                let c = {
                    let mut acc = slirp_core::wire::checksum::pseudo_header(
                        src,
                        Ipv4Addr::from(dst),
                        slirp_core::wire::IpProtocol::Tcp,
                        l4.len() as u32,
                    );
                    acc += slirp_core::wire::checksum::sum(&l4);
                    slirp_core::wire::checksum::finish(acc)
                };
                l4[16..18].copy_from_slice(&c.to_be_bytes());
                slirp.handle_guest_frame_offloaded(now, &frame(6, src_last, dst, 64, &l4), rx, &mut host);
            }
            Step::Writable { which, connect } => {
                if host.known.is_empty() {
                    continue;
                }
                let id = host.known[usize::from(which) % host.known.len()];
                if !host.open.contains(&id.0) {
                    continue;
                }
                host.connect_result = match connect % 4 {
                    0 | 1 => None,
                    2 => Some(HostError::WouldBlock),
                    _ => Some(err(connect)),
                };
                slirp.handle_host_writable(now, id, &mut host);
            }
            Step::TcpData { which, data, eof } => {
                if host.known.is_empty() {
                    continue;
                }
                let id = host.known[usize::from(which) % host.known.len()];
                if !host.open.contains(&id.0) {
                    continue;
                }
                let e = host.tcp_inbox.entry(id.0).or_default();
                e.0.extend_from_slice(&data);
                e.1 |= eof;
                slirp.handle_host_readable(now, id, &mut host);
            }
            Step::AddTcpForward { port, gport } => {
                let _ = slirp.add_tcp_forward(
                    &mut host,
                    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
                    SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 15), gport),
                );
            }
            Step::Accept { port } => {
                if let Some(&l) = host.listeners.first() {
                    host.accepts.push_back(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
                    slirp.handle_host_readable(now, l, &mut host);
                }
            }
            Step::Readable { which, answers } => {
                if host.known.is_empty() {
                    continue;
                }
                let id = host.known[usize::from(which) % host.known.len()];
                if !host.open.contains(&id.0) {
                    continue;
                }
                host.queue = answers.into_iter().take(64).collect();
                slirp.handle_host_readable(now, id, &mut host);
            }
            Step::AddForward { port, guest_last, gport } => {
                let _ = slirp.add_udp_forward(
                    &mut host,
                    SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
                    SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, guest_last), gport),
                );
            }
            Step::RemoveForward(id) => {
                let _ = slirp.remove_udp_forward(&mut host, id % 8);
            }
            Step::Advance(ms) => {
                now = now + core::time::Duration::from_millis(u64::from(ms) * 64);
                slirp.handle_timeout(now, &mut host);
            }
            Step::Drain(n) => {
                for _ in 0..n {
                    match slirp.poll_transmit_into(now, &mut host, &mut out) {
                        Some(len) => check_output(&out[..len], max_frame),
                        None => break,
                    }
                }
            }
        }
        host.queue.clear();
    }
    while let Some(len) = slirp.poll_transmit_into(now, &mut host, &mut out) {
        check_output(&out[..len], max_frame);
    }
});
