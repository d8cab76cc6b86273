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
use slirp_test_host::{FakeNet, SimConfig, Simulation, GUEST_MAC};

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
